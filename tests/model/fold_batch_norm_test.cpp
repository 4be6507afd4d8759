#include "veil/model/fold_batch_norm.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "veil/model/shape_inference.hpp"

namespace veil::model {
namespace {

struct ConvSpec {
  int64_t n = 2, c = 4, h = 7, w = 6, m = 6, kh = 3, kw = 2, group = 2;
  int64_t stride = 2, pad = 1, dilation = 1;
  bool bias = true;
};

Tensor random_tensor(Shape shape, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  Tensor t(std::move(shape));
  for (auto& v : t.floats()) v = dist(rng);
  return t;
}

// Naive direct convolution (NCHW, grouped, strided, padded, dilated).
Tensor naive_conv(const Tensor& x, const Tensor& w, const Tensor* b, const ConvSpec& s) {
  const int64_t oh = (s.h + 2 * s.pad - s.dilation * (s.kh - 1) - 1) / s.stride + 1;
  const int64_t ow = (s.w + 2 * s.pad - s.dilation * (s.kw - 1) - 1) / s.stride + 1;
  Tensor y({s.n, s.m, oh, ow});
  const int64_t cg = s.c / s.group, mg = s.m / s.group;
  auto xv = x.floats();
  auto wv = w.floats();
  auto yv = y.floats();
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t m = 0; m < s.m; ++m)
      for (int64_t i = 0; i < oh; ++i)
        for (int64_t j = 0; j < ow; ++j) {
          double acc = b ? b->floats()[static_cast<size_t>(m)] : 0.0;
          const int64_t g = m / mg;
          for (int64_t c = 0; c < cg; ++c)
            for (int64_t ki = 0; ki < s.kh; ++ki)
              for (int64_t kj = 0; kj < s.kw; ++kj) {
                int64_t yi = i * s.stride - s.pad + ki * s.dilation;
                int64_t xj = j * s.stride - s.pad + kj * s.dilation;
                if (yi < 0 || yi >= s.h || xj < 0 || xj >= s.w) continue;
                int64_t xc = g * cg + c;
                acc += static_cast<double>(
                           xv[static_cast<size_t>(((n * s.c + xc) * s.h + yi) * s.w + xj)]) *
                       wv[static_cast<size_t>(((m * cg + c) * s.kh + ki) * s.kw + kj)];
              }
          yv[static_cast<size_t>(((n * s.m + m) * oh + i) * ow + j)] = static_cast<float>(acc);
        }
  return y;
}

Tensor naive_bn(const Tensor& x, const Tensor& scale, const Tensor& bias, const Tensor& mean,
                const Tensor& var, float eps) {
  Tensor y = x;
  const int64_t n = x.dim(0), c = x.dim(1), hw = x.numel() / (n * c);
  auto yv = y.floats();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < c; ++k) {
      auto kk = static_cast<size_t>(k);
      float inv = 1.0f / std::sqrt(var.floats()[kk] + eps);
      for (int64_t p = 0; p < hw; ++p) {
        float& v = yv[static_cast<size_t>((i * c + k) * hw + p)];
        v = (v - mean.floats()[kk]) * inv * scale.floats()[kk] + bias.floats()[kk];
      }
    }
  return y;
}

Model conv_bn_model(const ConvSpec& s, std::mt19937& rng) {
  Model m;
  Graph& g = m.graph;
  g.inputs.push_back({"x", DType::Float32, {s.n, s.c, s.h, s.w}});
  g.initializers["w"] = random_tensor({s.m, s.c / s.group, s.kh, s.kw}, rng);
  if (s.bias) g.initializers["b"] = random_tensor({s.m}, rng);
  g.initializers["scale"] = random_tensor({s.m}, rng, 0.5f, 2.0f);
  g.initializers["shift"] = random_tensor({s.m}, rng);
  g.initializers["mean"] = random_tensor({s.m}, rng);
  g.initializers["var"] = random_tensor({s.m}, rng, 0.1f, 3.0f);
  Node conv;
  conv.name = "conv";
  conv.op_type = "Conv";
  conv.inputs = {"x", "w"};
  if (s.bias) conv.inputs.push_back("b");
  conv.outputs = {"c"};
  conv.attributes["group"] = s.group;
  conv.attributes["strides"] = std::vector<int64_t>{s.stride, s.stride};
  conv.attributes["pads"] = std::vector<int64_t>{s.pad, s.pad, s.pad, s.pad};
  conv.attributes["dilations"] = std::vector<int64_t>{s.dilation, s.dilation};
  Node bn;
  bn.name = "bn";
  bn.op_type = "BatchNormalization";
  bn.inputs = {"c", "scale", "shift", "mean", "var"};
  bn.outputs = {"y"};
  bn.attributes["epsilon"] = 1e-3f;
  g.nodes = {conv, bn};
  g.outputs.push_back({"y", DType::Float32, {}});
  return m;
}

void expect_close(const Tensor& a, const Tensor& b) {
  ASSERT_EQ(a.shape(), b.shape());
  for (int64_t i = 0; i < a.numel(); ++i) {
    float x = a.floats()[static_cast<size_t>(i)], y = b.floats()[static_cast<size_t>(i)];
    EXPECT_NEAR(x, y, 1e-5 * std::max(1.0f, std::fabs(x))) << "at " << i;
  }
}

TEST(FoldBatchNorm, FoldedConvMatchesConvThenBatchNorm) {
  std::mt19937 rng(42);
  std::vector<ConvSpec> specs(4);
  specs[1].bias = false;
  specs[2].group = 1;
  specs[2].dilation = 2;
  specs[2].pad = 2;
  specs[3].group = 4;
  specs[3].c = 4;
  specs[3].m = 8;
  specs[3].stride = 1;
  for (const ConvSpec& s : specs) {
    Model m = conv_bn_model(s, rng);
    const Graph& g = m.graph;
    Tensor x = random_tensor({s.n, s.c, s.h, s.w}, rng, -2.0f, 2.0f);
    const Tensor* b = s.bias ? &g.initializers.at("b") : nullptr;
    Tensor before = naive_bn(naive_conv(x, g.initializers.at("w"), b, s),
                             g.initializers.at("scale"), g.initializers.at("shift"),
                             g.initializers.at("mean"), g.initializers.at("var"), 1e-3f);
    ASSERT_EQ(fold_batch_norm(m), 1u);
    ASSERT_EQ(g.nodes.size(), 1u);
    const Node& conv = g.nodes[0];
    EXPECT_EQ(conv.outputs[0], "y");
    ASSERT_EQ(conv.inputs.size(), 3u);
    EXPECT_FALSE(g.initializers.count("scale"));
    EXPECT_FALSE(g.initializers.count("var"));
    Tensor after =
        naive_conv(x, g.initializers.at(conv.inputs[1]), &g.initializers.at(conv.inputs[2]), s);
    expect_close(after, before);
    infer_shapes(m);  // still a consistent graph
  }
}

TEST(FoldBatchNorm, SkipsConvWithAnotherConsumer) {
  std::mt19937 rng(1);
  Model m = conv_bn_model(ConvSpec{}, rng);
  Node relu;
  relu.name = "relu";
  relu.op_type = "Relu";
  relu.inputs = {"c"};
  relu.outputs = {"r"};
  m.graph.nodes.push_back(relu);
  m.graph.outputs.push_back({"r", DType::Float32, {}});
  Tensor w = m.graph.initializers.at("w");
  EXPECT_EQ(fold_batch_norm(m), 0u);
  EXPECT_EQ(m.graph.nodes.size(), 3u);
  EXPECT_EQ(m.graph.initializers.at("w"), w);
}

TEST(FoldBatchNorm, SharedWeightsAreCopiedNotModified) {
  std::mt19937 rng(2);
  ConvSpec s;
  Model m = conv_bn_model(s, rng);
  Node conv2 = m.graph.nodes[0];
  conv2.name = "conv2";
  conv2.outputs = {"c2"};
  m.graph.nodes.push_back(conv2);
  m.graph.outputs.push_back({"c2", DType::Float32, {}});
  Tensor w = m.graph.initializers.at("w");
  Tensor b = m.graph.initializers.at("b");
  EXPECT_EQ(fold_batch_norm(m), 1u);
  EXPECT_EQ(m.graph.initializers.at("w"), w);
  EXPECT_EQ(m.graph.initializers.at("b"), b);
  EXPECT_NE(m.graph.nodes[0].inputs[1], "w");
  EXPECT_EQ(m.graph.nodes[1].inputs[1], "w");
  infer_shapes(m);
}

TEST(FoldBatchNorm, LeavesBatchNormAfterOtherOps) {
  std::mt19937 rng(3);
  Model m = conv_bn_model(ConvSpec{}, rng);
  m.graph.nodes[0].op_type = "Relu";  // BN after something that is not a conv
  m.graph.nodes[0].inputs = {"x"};
  m.graph.nodes[0].attributes.clear();
  EXPECT_EQ(fold_batch_norm(m), 0u);
}

}  // namespace
}  // namespace veil::model

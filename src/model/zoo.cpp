#include "veil/model/zoo.hpp"

#include <cmath>
#include <random>

#include "veil/core/error.hpp"
#include "veil/model/ops.hpp"

namespace veil::model {

namespace {

// Appends nodes and He-initialised weights to a graph while tracking the current value and its
// shape, so each architecture below reads like its layer list.
class Builder {
 public:
  Builder(Model& m, const ArchSpec& spec) : m_(m), rng_(spec.seed) {
    m_.graph.inputs.push_back(
        {"input", DType::Float32, {-1, spec.channels, spec.height, spec.width}});
    cur_ = "input";
    c_ = spec.channels;
    h_ = spec.height;
    w_ = spec.width;
  }

  // He (Kaiming) normal initialisation for ReLU networks (He et al., ICCV 2015); biases zero.
  Tensor he_normal(Shape shape, int64_t fan_in) {
    Tensor t(std::move(shape));
    std::normal_distribution<float> dist(0.0f, std::sqrt(2.0f / static_cast<float>(fan_in)));
    for (float& v : t.floats()) v = dist(rng_);
    return t;
  }

  std::string conv(const std::string& name, int64_t out, int64_t k, int64_t stride, int64_t pad,
                   bool bias, const std::string& from = "") {
    return conv_padded(name, out, k, stride, {pad, pad, pad, pad}, bias, from);
  }

  // pads = {top, left, bottom, right}, as ONNX orders them for 2-D.
  std::string conv_padded(const std::string& name, int64_t out, int64_t k, int64_t stride,
                          const std::vector<int64_t>& pads, bool bias,
                          const std::string& from = "") {
    std::string in = from.empty() ? cur_ : from;
    int64_t cin = from.empty() ? c_ : from_c_;
    Node n{name, op_name(OpKind::Conv), {in, name + ".weight"}, {name + ".out"}, {}};
    m_.graph.initializers[name + ".weight"] = he_normal({out, cin, k, k}, cin * k * k);
    if (bias) {
      n.inputs.push_back(name + ".bias");
      m_.graph.initializers[name + ".bias"] = Tensor({out});
    }
    n.attributes["kernel_shape"] = std::vector<int64_t>{k, k};
    n.attributes["strides"] = std::vector<int64_t>{stride, stride};
    n.attributes["pads"] = pads;
    m_.graph.nodes.push_back(std::move(n));
    int64_t hin = from.empty() ? h_ : from_h_, win = from.empty() ? w_ : from_w_;
    c_ = out;
    h_ = (hin + pads[0] + pads[2] - k) / stride + 1;
    w_ = (win + pads[1] + pads[3] - k) / stride + 1;
    return cur_ = name + ".out";
  }

  std::string batch_norm(const std::string& name) {
    for (const char* p : {".scale", ".bias", ".mean", ".var"}) {
      Tensor t({c_});
      if (std::string(p) == ".scale" || std::string(p) == ".var")
        for (float& v : t.floats()) v = 1.0f;
      m_.graph.initializers[name + p] = std::move(t);
    }
    Node n{name,
           op_name(OpKind::BatchNormalization),
           {cur_, name + ".scale", name + ".bias", name + ".mean", name + ".var"},
           {name + ".out"},
           {}};
    n.attributes["epsilon"] = 1e-5f;
    n.attributes["momentum"] = 0.9f;
    m_.graph.nodes.push_back(std::move(n));
    return cur_ = name + ".out";
  }

  std::string relu(const std::string& name) { return unary(name, op_name(OpKind::Relu)); }

  // The polynomial activation a*x^2 + b*x, built from ops every backend already runs: Mul(x, x)
  // ("<name>.square"), then Mul by the constant a and, when b != 0, Add of Mul(x, b). A reader
  // (the HE compiler) recognises the square as the Mul whose two inputs are one value and the
  // rest as multiplications and additions by constants. The coefficients are initializers that
  // training leaves alone (a Mul has no parameter inputs), so they stay the fixed, small values
  // that keep squares from blowing up (kSquareA, kSquareB below).
  std::string square(const std::string& name, float a, float b) {
    const std::string x = cur_;
    m_.graph.nodes.push_back(
        Node{name + ".square", op_name(OpKind::Mul), {x, x}, {name + ".square.out"}, {}});
    cur_ = name + ".square.out";
    if (a != 1.0f) cur_ = mul_constant(name + ".scale", cur_, name + ".a", a);
    if (b != 0.0f) {
      const std::string linear = mul_constant(name + ".linear", x, name + ".b", b);
      m_.graph.nodes.push_back(
          Node{name, op_name(OpKind::Add), {cur_, linear}, {name + ".out"}, {}});
      cur_ = name + ".out";
    }
    return cur_;
  }

  std::string max_pool(const std::string& name, int64_t k, int64_t stride) {
    Node n{name, op_name(OpKind::MaxPool), {cur_}, {name + ".out"}, {}};
    n.attributes["kernel_shape"] = std::vector<int64_t>{k, k};
    n.attributes["strides"] = std::vector<int64_t>{stride, stride};
    m_.graph.nodes.push_back(std::move(n));
    h_ = (h_ - k) / stride + 1;
    w_ = (w_ - k) / stride + 1;
    return cur_ = name + ".out";
  }

  std::string global_avg_pool(const std::string& name) {
    unary(name, op_name(OpKind::GlobalAveragePool));
    h_ = w_ = 1;
    return cur_;
  }

  std::string flatten(const std::string& name) {
    Node n{name, op_name(OpKind::Flatten), {cur_}, {name + ".out"}, {}};
    n.attributes["axis"] = int64_t{1};
    m_.graph.nodes.push_back(std::move(n));
    c_ = c_ * h_ * w_;
    h_ = w_ = 1;
    return cur_ = name + ".out";
  }

  // Gemm with transB = 1 (weights [out, in]), as torch.onnx exports nn.Linear.
  std::string dense(const std::string& name, int64_t out) {
    Node n{
        name, op_name(OpKind::Gemm), {cur_, name + ".weight", name + ".bias"}, {name + ".out"}, {}};
    n.attributes["transB"] = int64_t{1};
    m_.graph.initializers[name + ".weight"] = he_normal({out, c_}, c_);
    m_.graph.initializers[name + ".bias"] = Tensor({out});
    m_.graph.nodes.push_back(std::move(n));
    c_ = out;
    return cur_ = name + ".out";
  }

  std::string add(const std::string& name, const std::string& a, const std::string& b) {
    m_.graph.nodes.push_back(Node{name, op_name(OpKind::Add), {a, b}, {name + ".out"}, {}});
    return cur_ = name + ".out";
  }

  void output(int64_t classes) {
    // Name the logits "logits" by renaming the last node's output.
    m_.graph.nodes.back().outputs[0] = "logits";
    m_.graph.outputs.push_back({"logits", DType::Float32, {-1, classes}});
  }

  // Remember the current value as the source of a side branch (residual shortcut).
  void mark_branch() {
    from_c_ = c_;
    from_h_ = h_;
    from_w_ = w_;
  }

  const std::string& current() const { return cur_; }
  int64_t channels() const { return c_; }

 private:
  std::string mul_constant(const std::string& name, const std::string& in,
                           const std::string& constant, float value) {
    Tensor c({1});
    c.floats()[0] = value;
    m_.graph.initializers[constant] = std::move(c);
    m_.graph.nodes.push_back(Node{name, op_name(OpKind::Mul), {in, constant}, {name + ".out"}, {}});
    return name + ".out";
  }

  std::string unary(const std::string& name, const std::string& op) {
    m_.graph.nodes.push_back(Node{name, op, {cur_}, {name + ".out"}, {}});
    return cur_ = name + ".out";
  }

  Model& m_;
  std::mt19937 rng_;
  std::string cur_;
  int64_t c_, h_, w_;
  int64_t from_c_ = 0, from_h_ = 0, from_w_ = 0;
};

// LeNet-5 (LeCun et al., 1998) with ReLU and max pooling, as commonly trained today.
void build_lenet5(Builder& b, const ArchSpec& s) {
  b.conv("conv1", 6, 5, 1, 2, true);
  b.relu("relu1");
  b.max_pool("pool1", 2, 2);
  b.conv("conv2", 16, 5, 1, 0, true);
  b.relu("relu2");
  b.max_pool("pool2", 2, 2);
  b.flatten("flatten");
  b.dense("fc1", 120);
  b.relu("relu3");
  b.dense("fc2", 84);
  b.relu("relu4");
  b.dense("fc3", s.classes);
}

void build_mlp(Builder& b, const ArchSpec& s) {
  b.flatten("flatten");
  b.dense("fc1", 512);
  b.relu("relu1");
  b.dense("fc2", 256);
  b.relu("relu2");
  b.dense("fc3", s.classes);
}

// A small VGG (Simonyan & Zisserman, 2015): three stages of two 3x3 conv+BN+ReLU and a pool.
void build_vgg_small(Builder& b, const ArchSpec& s) {
  int stage = 0;
  for (int64_t width : {32, 64, 128}) {
    ++stage;
    for (int i = 1; i <= 2; ++i) {
      std::string n = "conv" + std::to_string(stage) + "_" + std::to_string(i);
      b.conv(n, width, 3, 1, 1, false);
      b.batch_norm(n + ".bn");
      b.relu(n + ".relu");
    }
    b.max_pool("pool" + std::to_string(stage), 2, 2);
  }
  b.flatten("flatten");
  b.dense("fc1", 256);
  b.relu("fc1.relu");
  b.dense("fc2", s.classes);
}

// The square activation's coefficients: 0.125 x^2 + 0.5 x, the quadratic fit of ReLU that Faster
// CryptoNets (Chou et al., 2018) use and the FHE paper's "modified square" (its Figure 6, after
// Chabanne et al., 2017) simplifies, without the constant term the next layer's bias absorbs.
// Measured on Fashion-MNIST with he-cnn (docs/HE.md): a plain x^2 diverges within four SGD steps
// at lr 0.05 and 0.01 (two squares raise the logits to the 4th power of the conv output) and
// reaches only 87.6 % at lr 0.002 after 10 epochs; 0.125 x^2 + 0.5 x trains at the default
// lr 0.05 to 89.4-89.8 % (three seeds), 0.1 x^2 alone to 89.3-89.7 %.
constexpr float kSquareA = 0.125f, kSquareB = 0.5f;

void add_classifier_activation(Builder& b, const std::string& name, const std::string& kind) {
  if (kind == "relu")
    b.relu(name);
  else if (kind == "square")
    b.square(name, kSquareA, kSquareB);
  else if (kind != "none")
    throw InvalidArgument("classifier activation must be relu, square or none, not '" + kind + "'");
}

// CryptoNets (Gilad-Bachrach et al., ICML 2016) as LoLa (Brutzkus et al., ICML 2019) runs it on
// MNIST: conv 5x5 stride 2 with 5 maps, square, dense 100, square, dense 10. CryptoNets pads the
// 28x28 image to 29x29 (one row and column at the bottom and right), so the conv gives 5x13x13 =
// 845 features, the LoLa dense layer's input.
void build_he_cnn(Builder& b, const ArchSpec& s) {
  b.conv_padded("conv1", 5, 5, 2, {0, 0, 1, 1}, true);
  b.square("act1", kSquareA, kSquareB);
  b.flatten("flatten");
  b.dense("fc1", 100);
  b.square("act2", kSquareA, kSquareB);
  b.dense("fc2", s.classes);
}

// The Keras example cifar10_cnn.py the FHE paper trains (its Figure 3): conv32 'same', conv32
// 'valid', max-pool, conv64 'same', conv64 'valid', max-pool, dense 512, dense 10, ReLU in the
// feature extractor; the classifier's hidden activation is the paper's variable (Figures 4-5).
// Dropout is left out: it does not change the inference graph the HE modes encrypt.
void build_keras_cifar10(Builder& b, const ArchSpec& s, const std::string& activation) {
  b.conv("conv1", 32, 3, 1, 1, true);
  b.relu("relu1");
  b.conv("conv2", 32, 3, 1, 0, true);
  b.relu("relu2");
  b.max_pool("pool1", 2, 2);
  b.conv("conv3", 64, 3, 1, 1, true);
  b.relu("relu3");
  b.conv("conv4", 64, 3, 1, 0, true);
  b.relu("relu4");
  b.max_pool("pool2", 2, 2);
  b.flatten("flatten");
  b.dense("fc1", 512);
  add_classifier_activation(b, "act1", activation.empty() ? "relu" : activation);
  b.dense("fc2", s.classes);
}

// The CIFAR-layout residual networks (He et al., CVPR 2016): a 3x3 stem conv + BN + ReLU (no
// max pool), stages of basic blocks (two 3x3 conv + BN, the first of a stage after the first
// with stride 2), projection shortcuts (1x1 conv + BN) where the shape changes, global average
// pool, one dense layer. Blocks are named layer<stage>.<block>.
void build_cifar_resnet(Builder& b, const ArchSpec& s, const std::vector<int64_t>& widths,
                        int blocks_per_stage) {
  b.conv("conv1", widths.front(), 3, 1, 1, false);
  b.batch_norm("bn1");
  b.relu("relu1");
  for (size_t st = 0; st < widths.size(); ++st) {
    const int64_t width = widths[st];
    for (int block = 0; block < blocks_per_stage; ++block) {
      std::string p = "layer" + std::to_string(st + 1) + "." + std::to_string(block);
      int64_t stride = (st > 0 && block == 0) ? 2 : 1;
      std::string identity = b.current();
      b.mark_branch();
      bool project = stride != 1 || b.channels() != width;
      b.conv(p + ".conv1", width, 3, stride, 1, false);
      b.batch_norm(p + ".bn1");
      b.relu(p + ".relu1");
      b.conv(p + ".conv2", width, 3, 1, 1, false);
      std::string main = b.batch_norm(p + ".bn2");
      std::string shortcut = identity;
      if (project) {
        b.conv(p + ".shortcut", width, 1, stride, 0, false, identity);
        shortcut = b.batch_norm(p + ".shortcut.bn");
      }
      b.add(p + ".add", main, shortcut);
      b.relu(p + ".relu2");
    }
  }
  b.global_avg_pool("gap");
  b.flatten("flatten");
  b.dense("fc", s.classes);
}

// ResNet-20 for 32x32-class inputs (He et al., section 4.2): 3 stages x 3 blocks of 16/32/64.
void build_resnet20(Builder& b, const ArchSpec& s) { build_cifar_resnet(b, s, {16, 32, 64}, 3); }

// ResNet-18 in the CIFAR layout (as in the block-ReLU paper's CIFAR experiments, Gorski & Avidan,
// arXiv 2304.10442): ImageNet ResNet-18's 4 stages x 2 blocks of 64/128/256/512 with the 3x3
// stem and no max pool; 11.17 M parameters for 10 classes.
void build_resnet18(Builder& b, const ArchSpec& s) {
  build_cifar_resnet(b, s, {64, 128, 256, 512}, 2);
}

}  // namespace

std::vector<std::string> arch_names() {
  return {"lenet5", "mlp", "vgg-small", "resnet20", "resnet18", "he-cnn", "keras-cifar10"};
}

bool takes_classifier_activation(const std::string& arch) { return arch == "keras-cifar10"; }

Model build_arch(const std::string& name, const ArchSpec& spec,
                 const std::string& classifier_activation) {
  if (spec.channels <= 0 || spec.height <= 0 || spec.width <= 0 || spec.classes <= 1)
    throw InvalidArgument("architecture needs a positive input shape and at least 2 classes");
  if (!classifier_activation.empty() && !takes_classifier_activation(name))
    throw InvalidArgument("--classifier-activation applies to keras-cifar10 only, not " + name);
  Model m;
  m.graph.name = name;
  m.metadata["veil.arch"] = name;
  Builder b(m, spec);
  if (name == "lenet5") {
    if (spec.height < 12 || spec.width < 12) throw InvalidArgument("lenet5 needs inputs >= 12x12");
    build_lenet5(b, spec);
  } else if (name == "mlp") {
    build_mlp(b, spec);
  } else if (name == "vgg-small") {
    if (spec.height < 8 || spec.width < 8) throw InvalidArgument("vgg-small needs inputs >= 8x8");
    build_vgg_small(b, spec);
  } else if (name == "resnet20") {
    build_resnet20(b, spec);
  } else if (name == "resnet18") {
    build_resnet18(b, spec);
  } else if (name == "he-cnn") {
    if (spec.height < 5 || spec.width < 5) throw InvalidArgument("he-cnn needs inputs >= 5x5");
    build_he_cnn(b, spec);
  } else if (name == "keras-cifar10") {
    if (spec.height < 10 || spec.width < 10)
      throw InvalidArgument("keras-cifar10 needs inputs >= 10x10");
    build_keras_cifar10(b, spec, classifier_activation);
  } else {
    throw InvalidArgument(
        "unknown architecture '" + name +
        "' (choose lenet5, mlp, vgg-small, resnet20, resnet18, he-cnn or keras-cifar10)");
  }
  b.output(spec.classes);
  validate(m.graph);
  return m;
}

}  // namespace veil::model

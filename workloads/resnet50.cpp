// ResNet-50 v1.5 exactly as torchvision builds it (stride on the 3x3 of each bottleneck),
// written as TorchScript source over registered parameters so that the graph holds the plain
// aten ops (conv2d, batch_norm, relu, add) that the core's passes rewrite.
#include "workloads/resnet50.h"

#include <fmt/format.h>

#include <array>
#include <cmath>
#include <string>

#include "base/error.h"
#include "workloads/seeded.h"

namespace ipt::workloads {
namespace {

constexpr int64_t kImageSize = 224;
constexpr int64_t kClasses = 1000;
constexpr int64_t kFeatures = 2048;
constexpr std::array<float, 3> kImageNetMean = {0.485f, 0.456f, 0.406f};
constexpr std::array<float, 3> kImageNetStd = {0.229f, 0.224f, 0.225f};
// Spread of the shift each batch_norm adds once its statistics are applied (see ConvBn).
constexpr double kBatchNormShiftStd = 0.01;
// The images' classes (see MakeResNet50): each image is its class's prototype plus a variation
// of this relative strength. More classes cost a double-precision forward of about 0.4 s each
// (two cores) per build; a stronger variation blurs the classes into each other.
constexpr int64_t kImageClasses = 32;
constexpr double kVariation = 0.3;

// Walks the architecture once: emits the TorchScript source of forward, registers each
// parameter it names (unless `module` is null, which only counts FLOPs) and counts FLOPs.
class Builder {
 public:
  Builder(torch::jit::Module* module, uint64_t seed) : module_(module), seed_(seed) {}

  // conv2d (no bias) followed by batch_norm, reading a feature map of side `in_side`.
  void ConvBn(const std::string& out, const std::string& in, const std::string& conv,
              const std::string& bn, int64_t in_ch, int64_t out_ch, int64_t kernel, int64_t stride,
              int64_t padding, int64_t in_side) {
    int64_t out_side = (in_side + 2 * padding - kernel) / stride + 1;
    flops_ += 2.0 * static_cast<double>(in_ch * out_ch * kernel * kernel * out_side * out_side);
    Line(fmt::format("{} = torch.conv2d({}, self.{}_weight, None, [{}, {}], [{}, {}], [1, 1], 1)",
                     out, in, conv, stride, stride, padding, padding));
    Line(
        fmt::format("{0} = torch.batch_norm({0}, self.{1}_weight, self.{1}_bias, "
                    "self.{1}_running_mean, self.{1}_running_var, False, 0.1, 1e-05, True)",
                    out, bn));
    if (module_ == nullptr) return;
    Param(conv + "_weight", KaimingNormalFanOut({out_ch, in_ch, kernel, kernel}, seed_, conv));
    // Non-trivial statistics, so that folding batch_norm into the conv really changes weights
    // and biases. The bias nearly cancels the mean, as in a trained network whose statistics
    // match its activations: shifts of the size of the statistics, repeated over 53 layers,
    // would add an input-independent part 30 times the size of what the image contributes to
    // the last features, and every prediction would hang on a few parts in a thousand of them.
    at::Tensor gamma = Uniform({out_ch}, 0.5, 1.0, seed_, bn + "_weight");
    at::Tensor mean = Normal({out_ch}, 0.0, 0.1, seed_, bn + "_running_mean");
    at::Tensor var = Uniform({out_ch}, 0.5, 1.5, seed_, bn + "_running_var");
    at::Tensor shift = Normal({out_ch}, 0.0, kBatchNormShiftStd, seed_, bn + "_bias");
    Param(bn + "_weight", gamma);
    Param(bn + "_bias", gamma * mean / (var + 1e-5).sqrt() + shift);
    module_->register_buffer(bn + "_running_mean", mean);
    module_->register_buffer(bn + "_running_var", var);
  }

  void Linear(const std::string& out, const std::string& in, const std::string& name,
              int64_t in_features, int64_t out_features) {
    flops_ += 2.0 * static_cast<double>(in_features * out_features);
    Line(fmt::format("{} = torch.linear({}, self.{}_weight, self.{}_bias)", out, in, name, name));
    if (module_ == nullptr) return;
    // torchvision's nn.Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
    Param(name + "_weight",
          Uniform({out_features, in_features}, -bound, bound, seed_, name + "_weight"));
    Param(name + "_bias", Uniform({out_features}, -bound, bound, seed_, name + "_bias"));
  }

  void Line(const std::string& text) { source_ += "    " + text + "\n"; }

  const std::string& source() const { return source_; }
  double flops() const { return flops_; }

 private:
  void Param(const std::string& name, const torch::Tensor& value) {
    module_->register_parameter(name, value, /*is_buffer=*/false);
  }

  torch::jit::Module* module_;
  uint64_t seed_;
  std::string source_;
  double flops_ = 0;
};

// The whole network, written through `b`; without the classifier, forward returns the pooled
// features.
void BuildResNet50(Builder& b, bool classifier = true) {
  int64_t side = kImageSize;
  b.ConvBn("x", "input", "conv1", "bn1", 3, 64, 7, 2, 3, side);
  side /= 2;
  b.Line("x = torch.relu(x)");
  b.Line("x = torch.max_pool2d(x, [3, 3], [2, 2], [1, 1], [1, 1], False)");
  side /= 2;
  int64_t in_ch = 64;
  const std::array<int64_t, 4> blocks = {3, 4, 6, 3};
  const std::array<int64_t, 4> widths = {64, 128, 256, 512};
  for (int layer = 0; layer < 4; ++layer) {
    for (int64_t block = 0; block < blocks[layer]; ++block) {
      int64_t width = widths[layer];
      int64_t out_ch = width * 4;
      int64_t stride = (layer > 0 && block == 0) ? 2 : 1;
      std::string p = fmt::format("layer{}_{}_", layer + 1, block);
      b.ConvBn("out", "x", p + "conv1", p + "bn1", in_ch, width, 1, 1, 0, side);
      b.Line("out = torch.relu(out)");
      b.ConvBn("out", "out", p + "conv2", p + "bn2", width, width, 3, stride, 1, side);
      b.Line("out = torch.relu(out)");
      int64_t out_side = side / stride;
      b.ConvBn("out", "out", p + "conv3", p + "bn3", width, out_ch, 1, 1, 0, out_side);
      if (block == 0) {
        b.ConvBn("identity", "x", p + "downsample_0", p + "downsample_1", in_ch, out_ch, 1, stride,
                 0, side);
        b.Line("out = out + identity");
      } else {
        b.Line("out = out + x");
      }
      b.Line("x = torch.relu(out)");
      side = out_side;
      in_ch = out_ch;
    }
  }
  b.Line("x = torch.adaptive_avg_pool2d(x, [1, 1])");
  b.Line("x = torch.flatten(x, 1)");
  if (classifier) b.Linear("x", "x", "fc", kFeatures, kClasses);
  b.Line("return x");
}

class ResNet50 : public Workload {
 public:
  explicit ResNet50(const WorkloadOptions& options) : options_(options) {}

  const std::string& name() const override { return name_; }

  torch::jit::Module BuildModel() const override {
    torch::jit::Module module("ResNet50");
    Builder b(&module, options_.seed);
    BuildResNet50(b);
    module.define("def forward(self, input):\n" + b.source());
    module.eval();
    CalibrateClassifier(module);
    return module;
  }

  // Each image is its class's prototype plus a weaker variation drawn for it alone.
  std::vector<torch::jit::IValue> MakeInputs(int64_t batch, int64_t index) const override {
    auto generator = SeededGenerator(options_.seed ^ 0x5eed, "images/" + std::to_string(index));
    at::Tensor classes = at::randint(kImageClasses, {batch}, generator, at::kLong);
    std::vector<at::Tensor> prototypes;
    for (int64_t i = 0; i < batch; ++i) prototypes.push_back(Prototype(classes[i].item<int64_t>()));
    return {Normalise(at::cat(prototypes) + kVariation * Texture(batch, generator))};
  }

  double FlopsPerItem() const override {
    Builder b(nullptr, options_.seed);
    BuildResNet50(b);
    return b.flops();
  }

  std::vector<recipes::InputSpec> DescribeInputs(int64_t batch) const override {
    return {{"input", {batch, 3, kImageSize, kImageSize}, "float32"}};
  }

  std::string BuildDescription() const override {
    return fmt::format("{} seed={}", name_, options_.seed);
  }

  MetricKind Metric() const override { return MetricKind::kTopK; }

 private:
  // Images in units of ImageNet's per-channel spread around its mean: a brightness and a tint,
  // smooth blobs of colour, finer texture and pixel noise, each of its own strength.
  static at::Tensor Texture(int64_t batch, at::Generator& generator) {
    auto normal = [&generator](at::IntArrayRef shape) {
      return at::empty(shape, at::kFloat).normal_(0, 1, generator);
    };
    auto amplitude = [&generator, batch](double low, double high) {
      return at::empty({batch, 1, 1, 1}, at::kFloat).uniform_(low, high, generator);
    };
    auto upsample = [](const at::Tensor& coarse) {
      return at::upsample_bilinear2d(coarse, {kImageSize, kImageSize}, /*align_corners=*/false);
    };
    at::Tensor z = 0.5 * normal({batch, 1, 1, 1}) + 0.2 * normal({batch, 3, 1, 1}) +
                   upsample(normal({batch, 3, 4, 4})) * amplitude(0.2, 0.8);
    z += upsample(normal({batch, 3, 28, 28})) * amplitude(0.0, 0.5);
    z += normal({batch, 3, kImageSize, kImageSize}) * amplitude(0.0, 0.4);
    return z;
  }

  // The images as the network reads them: pixels in [0, 1], normalised with ImageNet's mean and
  // spread.
  static at::Tensor Normalise(const at::Tensor& z) {
    auto mean = torch::tensor(std::vector<float>(kImageNetMean.begin(), kImageNetMean.end()))
                    .view({1, 3, 1, 1});
    auto std = torch::tensor(std::vector<float>(kImageNetStd.begin(), kImageNetStd.end()))
                   .view({1, 3, 1, 1});
    at::Tensor pixels = (mean + std * z).clamp_(0, 1);
    return (pixels - mean) / std;
  }

  at::Tensor Prototype(int64_t image_class) const {
    auto generator =
        SeededGenerator(options_.seed ^ 0x5eed, "prototypes/" + std::to_string(image_class));
    return Texture(1, generator);
  }

  // See MakeResNet50's contract for why. The features come from a double-precision forward, so
  // they differ between processes, thread counts and ISAs by about 1e-14 of their size; the
  // values derived from them are rounded to 1/16384 of their scale (odds that one rounds
  // another way: about 1e-4 in all), and the classifier is expanded from those in a fixed
  // order. Every process thus gets the same bits.
  void CalibrateClassifier(torch::jit::Module& module) const {
    torch::NoGradGuard no_grad;
    torch::jit::Module twin("ResNet50Features");
    for (const auto& p : module.named_parameters()) {
      if (p.name.rfind("fc_", 0) == 0) continue;
      twin.register_parameter(p.name, p.value.to(at::kDouble), /*is_buffer=*/false);
    }
    for (const auto& b : module.named_buffers()) {
      twin.register_buffer(b.name, b.value.to(at::kDouble));
    }
    Builder source(nullptr, options_.seed);
    BuildResNet50(source, /*classifier=*/false);
    twin.define("def forward(self, input):\n" + source.source());
    std::vector<at::Tensor> prototypes;
    for (int64_t c = 0; c < kImageClasses; ++c) prototypes.push_back(Prototype(c));
    at::Tensor features = twin.forward({Normalise(at::cat(prototypes)).to(at::kDouble)}).toTensor();
    at::Tensor centre = features.mean(0).contiguous();
    auto [u, singular, vh] = at::linalg_svd(features - centre, /*full_matrices=*/false);
    vh = vh.contiguous();
    // Centred, the prototypes span one direction fewer than there are of them.
    constexpr int64_t k = kImageClasses - 1;
    const double samples = static_cast<double>(kImageClasses);

    std::vector<double> mean(kFeatures);
    const double* centre_data = centre.data_ptr<double>();
    const double mean_scale = centre.abs().max().item<double>();
    for (int64_t i = 0; i < kFeatures; ++i) mean[i] = FineRound(centre_data[i], mean_scale);
    const double* s = singular.data_ptr<double>();
    std::vector<double> spread(k);
    std::vector<double> sign(k);
    std::vector<double> direction(k * kFeatures);
    for (int64_t j = 0; j < k; ++j) {
      if (!(s[j] > 0)) {
        throw Error(ErrorCode::kInternal,
                    "resnet50: the class prototypes give too few distinct features");
      }
      spread[j] = FineRound(s[j] / std::sqrt(samples - 1), s[0] / std::sqrt(samples - 1));
      // A principal direction's sign is arbitrary: its largest component is made positive.
      const double* v = vh.data_ptr<double>() + j * kFeatures;
      sign[j] = v[vh[j].abs().argmax().item<int64_t>()] > 0 ? 1.0 : -1.0;
      for (int64_t i = 0; i < kFeatures; ++i) {
        direction[j * kFeatures + i] = FineRound(sign[j] * v[i], 1.0);
      }
    }

    // Each class has a mean in the whitened coordinates: a prototype's own coordinates for the
    // classes that have images; for the others, which no image resembles, a random point twice
    // as far from the centre as the prototypes are. An image's logits are minus half its
    // squared distances to the means (up to a term shared by every class), so it goes to the
    // nearest mean.
    at::Tensor coordinates = (features - centre).matmul(vh.narrow(0, 0, k).t()) /
                             singular.narrow(0, 0, k) * std::sqrt(samples - 1);
    double radius = coordinates.pow(2).sum(1).mean().sqrt().item<double>();
    radius = FineRound(radius, radius);
    coordinates = coordinates.contiguous();
    const double* coordinate = coordinates.data_ptr<double>();
    std::vector<double> means(kClasses * k);
    for (int64_t c = 0; c < kImageClasses; ++c) {
      for (int64_t j = 0; j < k; ++j) {
        means[c * k + j] = FineRound(sign[j] * coordinate[c * k + j], radius);
      }
    }
    at::Tensor others =
        Normal({kClasses - kImageClasses, k}, 0.0, 1.0, options_.seed, "fc_class_means");
    const float* other = others.data_ptr<float>();
    for (int64_t c = kImageClasses; c < kClasses; ++c) {
      const float* row = other + (c - kImageClasses) * k;
      double norm = 0;
      for (int64_t j = 0; j < k; ++j) norm += double{row[j]} * row[j];
      for (int64_t j = 0; j < k; ++j) means[c * k + j] = row[j] * 2 * radius / std::sqrt(norm);
    }

    // Scaled by 1 / radius: at its prototype, an image's own class scores about radius / 2 (2.7
    // for the default seed), the other classes with images about -radius / 2, the others about
    // -2 radius.
    const double scale = 1.0 / radius;
    at::Tensor weight = at::empty({kClasses, kFeatures}, at::kDouble);
    at::Tensor bias = at::empty({kClasses}, at::kDouble);
    double* w = weight.data_ptr<double>();
    for (int64_t c = 0; c < kClasses; ++c, w += kFeatures) {
      const double* m = &means[c * k];
      double a[k];
      double squared = 0;
      for (int64_t j = 0; j < k; ++j) {
        a[j] = scale * m[j] / spread[j];
        squared += m[j] * m[j];
      }
      double b = -scale * squared / 2;
      for (int64_t i = 0; i < kFeatures; ++i) {
        w[i] = 0;
        for (int64_t j = 0; j < k; ++j) w[i] += a[j] * direction[j * kFeatures + i];
        b -= w[i] * mean[i];
      }
      bias.data_ptr<double>()[c] = b;
    }
    module.attr("fc_weight").toTensor().copy_(weight);
    module.attr("fc_bias").toTensor().copy_(bias);
  }

  std::string name_ = "resnet50";
  WorkloadOptions options_;
};

}  // namespace

std::unique_ptr<Workload> MakeResNet50(const WorkloadOptions& options) {
  return std::make_unique<ResNet50>(options);
}

}  // namespace ipt::workloads

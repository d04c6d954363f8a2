// ResNet-50 v1.5 exactly as torchvision builds it (stride on the 3x3 of each bottleneck),
// written as TorchScript source over registered parameters so that the graph holds the plain
// aten ops (conv2d, batch_norm, relu, add) that the core's passes rewrite.
#include "workloads/resnet50.h"

#include <fmt/format.h>

#include <array>
#include <cmath>
#include <string>

#include "workloads/seeded.h"

namespace ipt::workloads {
namespace {

constexpr int64_t kImageSize = 224;
constexpr int64_t kClasses = 1000;
constexpr std::array<float, 3> kImageNetMean = {0.485f, 0.456f, 0.406f};
constexpr std::array<float, 3> kImageNetStd = {0.229f, 0.224f, 0.225f};

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
    // Non-trivial statistics, so that folding batch_norm into the conv really changes weights.
    Param(bn + "_weight", Uniform({out_ch}, 0.5, 1.0, seed_, bn + "_weight"));
    Param(bn + "_bias", Normal({out_ch}, 0.0, 0.1, seed_, bn + "_bias"));
    module_->register_buffer(bn + "_running_mean",
                             Normal({out_ch}, 0.0, 0.1, seed_, bn + "_running_mean"));
    module_->register_buffer(bn + "_running_var",
                             Uniform({out_ch}, 0.5, 1.5, seed_, bn + "_running_var"));
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

// The whole network, written through `b`.
void BuildResNet50(Builder& b) {
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
  b.Linear("x", "x", "fc", 2048, kClasses);
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
    return module;
  }

  std::vector<torch::jit::IValue> MakeInputs(int64_t batch, int64_t index) const override {
    auto generator = SeededGenerator(options_.seed ^ 0x5eed, "images/" + std::to_string(index));
    auto pixels =
        at::empty({batch, 3, kImageSize, kImageSize}, at::kFloat).uniform_(0, 1, generator);
    auto mean = torch::tensor(std::vector<float>(kImageNetMean.begin(), kImageNetMean.end()));
    auto std = torch::tensor(std::vector<float>(kImageNetStd.begin(), kImageNetStd.end()));
    return {(pixels - mean.view({1, 3, 1, 1})) / std.view({1, 3, 1, 1})};
  }

  double FlopsPerItem() const override {
    Builder b(nullptr, options_.seed);
    BuildResNet50(b);
    return b.flops();
  }

  std::vector<recipes::InputSpec> DescribeInputs(int64_t batch) const override {
    return {{"input", {batch, 3, kImageSize, kImageSize}, "float32"}};
  }

 private:
  std::string name_ = "resnet50";
  WorkloadOptions options_;
};

}  // namespace

std::unique_ptr<Workload> MakeResNet50(const WorkloadOptions& options) {
  return std::make_unique<ResNet50>(options);
}

}  // namespace ipt::workloads

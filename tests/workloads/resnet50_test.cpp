#include "workloads/resnet50.h"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "workloads/workload.h"

namespace ipt::workloads {
namespace {

int64_t CountParameters(const torch::jit::Module& m) {
  int64_t total = 0;
  for (const auto& p : m.parameters()) total += p.numel();
  return total;
}

at::Tensor Forward(torch::jit::Module& m, const std::vector<torch::jit::IValue>& inputs) {
  torch::NoGradGuard no_grad;
  return m.forward(inputs).toTensor();
}

// resnet50, built once: its classifier calibration runs 32 images in double precision.
class ResNet50Test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    workload_ = MakeWorkload("resnet50", {});
    module_ = workload_->BuildModel();
  }
  static void TearDownTestSuite() {
    module_.reset();
    workload_.reset();
  }
  static inline std::unique_ptr<Workload> workload_;
  static inline std::optional<torch::jit::Module> module_;
};

TEST_F(ResNet50Test, HasTorchvisionParameterCountAndOutputShape) {
  EXPECT_EQ(CountParameters(*module_), 25557032);
  at::Tensor out = Forward(*module_, workload_->MakeInputs(2, 0));
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{2, 1000}));
  EXPECT_TRUE(out.isfinite().all().item<bool>());
  EXPECT_EQ(workload_->Metric(), MetricKind::kTopK);
}

TEST_F(ResNet50Test, GraphHoldsPlainAtenOpsForThePasses) {
  auto graph = module_->get_method("forward").graph();
  int conv = 0, bn = 0, add = 0;
  for (const torch::jit::Node* n : graph->nodes()) {
    conv += n->kind() == c10::Symbol::fromQualString("aten::conv2d");
    bn += n->kind() == c10::Symbol::fromQualString("aten::batch_norm");
    add += n->kind() == c10::Symbol::fromQualString("aten::add");
  }
  EXPECT_EQ(conv, 53);
  EXPECT_EQ(bn, 53);
  EXPECT_EQ(add, 16);
}

// The calibrated classifier too: it is computed in double precision, so another thread count
// gives the same bits.
TEST_F(ResNet50Test, WeightsAndInputsAreDeterministic) {
  auto b = MakeWorkload("resnet50", {});
  const int threads = at::get_num_threads();
  at::set_num_threads(threads == 1 ? 2 : 1);
  std::string rebuilt = ModelHash(b->BuildModel());
  at::set_num_threads(threads);
  EXPECT_EQ(ModelHash(*module_), rebuilt);
  EXPECT_TRUE(workload_->MakeInputs(1, 3)[0].toTensor().equal(b->MakeInputs(1, 3)[0].toTensor()));
  EXPECT_FALSE(
      workload_->MakeInputs(1, 3)[0].toTensor().equal(workload_->MakeInputs(1, 4)[0].toTensor()));
  WorkloadOptions other;
  other.seed = 7;
  EXPECT_NE(ModelHash(*module_), ModelHash(MakeWorkload("resnet50", other)->BuildModel()));
}

// Random weights alone send every image to one class, and a classifier that merely spreads the
// images over classes leaves them so close to the next class that bf16 changes a quarter of the
// predictions. The calibrated classifier behaves like a trained one: the evaluation images,
// which the calibration never saw, go to the 32 classes that have images, spread over them,
// and keep their class when every weight is rounded to bf16 (a change of up to 0.4%). 32
// images (the evaluation set of a trial at batch 8), twice: about 6 s.
TEST_F(ResNet50Test, PredictionsSpreadOverTheImageClassesWithMargins) {
  torch::jit::Module rounded = module_->clone();
  for (const auto& p : rounded.parameters()) p.detach().copy_(p.to(at::kBFloat16));
  std::map<int64_t, int> counts;
  int changed = 0;
  std::vector<at::Tensor> logits;
  for (int64_t index = 0; index < 4; ++index) {
    auto inputs = workload_->MakeInputs(8, index);
    logits.push_back(Forward(*module_, inputs));
    at::Tensor top1 = logits.back().argmax(1);
    changed += top1.ne(Forward(rounded, inputs).argmax(1)).sum().item<int>();
    for (int64_t i = 0; i < top1.size(0); ++i) ++counts[top1[i].item<int64_t>()];
  }
  EXPECT_GE(counts.size(), 16u) << "distinct classes among 32 images";
  EXPECT_LT(counts.rbegin()->first, 32) << "a class without images won";
  EXPECT_LE(changed, 1) << "predictions changed by bf16 weights among 32";
  // Logits of about a trained classifier's size: an image's spread over the classes.
  double spread = at::cat(logits).std(1).mean().item<double>();
  EXPECT_GT(spread, 0.5);
  EXPECT_LT(spread, 4.0);
}

TEST_F(ResNet50Test, FlopsMatchTheKnownFigure) {
  // 4.09 G multiply-adds per 224x224 image (torchvision's figure), counted twice.
  EXPECT_NEAR(MakeWorkload("resnet50", {})->FlopsPerItem(), 8.18e9, 0.02e9);
}

TEST_F(ResNet50Test, InputsAreImagesNormalisedLikeImageNet) {
  at::Tensor x = MakeWorkload("resnet50", {})->MakeInputs(32, 0)[0].toTensor();
  EXPECT_EQ(x.sizes(), (std::vector<int64_t>{32, 3, 224, 224}));
  // Pixels in [0, 1] before the normalisation, with ImageNet's mean and about its spread.
  const std::vector<double> mean = {0.485, 0.456, 0.406}, std = {0.229, 0.224, 0.225};
  for (int64_t c = 0; c < 3; ++c) {
    at::Tensor pixels = x.select(1, c) * std[c] + mean[c];
    EXPECT_GE(pixels.min().item<double>(), -1e-6);
    EXPECT_LE(pixels.max().item<double>(), 1 + 1e-6);
    EXPECT_NEAR(x.select(1, c).mean().item<double>(), 0, 0.25) << c;
    EXPECT_NEAR(x.select(1, c).std().item<double>(), 0.85, 0.25) << c;
  }
  // Images differ as a whole, not only pixel by pixel: their mean brightness varies.
  EXPECT_GT(x.mean({1, 2, 3}).std().item<double>(), 0.2);
}

TEST(RegistryTest, UnknownWorkloadNamesTheKnownOnes) {
  try {
    MakeWorkload("resnet5", {});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find("resnet50"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ipt::workloads

namespace ipt::workloads {
namespace {

// torchvision's ResNet-50 written again with plain aten calls over the built module's
// parameters: an independent check that the generated TorchScript wires every block right
// (strides on the 3x3, downsample on the first block of each layer, residual adds).
at::Tensor IndependentResNet50(const torch::jit::Module& m, at::Tensor x) {
  std::map<std::string, at::Tensor> p;
  for (const auto& t : m.named_parameters()) p[t.name] = t.value;
  for (const auto& t : m.named_buffers()) p[t.name] = t.value;
  auto bn = [&](const at::Tensor& y, const std::string& name) {
    return at::batch_norm(y, p[name + "_weight"], p[name + "_bias"], p[name + "_running_mean"],
                          p[name + "_running_var"], false, 0.1, 1e-5, false);
  };
  auto conv = [&](const at::Tensor& y, const std::string& name, int64_t stride, int64_t pad) {
    return at::conv2d(y, p[name + "_weight"], {}, stride, pad);
  };
  x = at::relu(bn(conv(x, "conv1", 2, 3), "bn1"));
  x = at::max_pool2d(x, 3, 2, 1);
  const int64_t blocks[] = {3, 4, 6, 3};
  for (int layer = 1; layer <= 4; ++layer) {
    for (int64_t b = 0; b < blocks[layer - 1]; ++b) {
      std::string n = "layer" + std::to_string(layer) + "_" + std::to_string(b) + "_";
      int64_t stride = layer > 1 && b == 0 ? 2 : 1;
      at::Tensor out = at::relu(bn(conv(x, n + "conv1", 1, 0), n + "bn1"));
      out = at::relu(bn(conv(out, n + "conv2", stride, 1), n + "bn2"));
      out = bn(conv(out, n + "conv3", 1, 0), n + "bn3");
      at::Tensor identity =
          b == 0 ? bn(conv(x, n + "downsample_0", stride, 0), n + "downsample_1") : x;
      x = at::relu(out + identity);
    }
  }
  x = at::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
  return at::linear(x, p["fc_weight"], p["fc_bias"]);
}

TEST_F(ResNet50Test, MatchesAnIndependentAtenComposition) {
  torch::NoGradGuard no_grad;
  at::Tensor x = workload_->MakeInputs(2, 0)[0].toTensor();
  at::Tensor expected = IndependentResNet50(*module_, x);
  at::Tensor got = module_->forward({x}).toTensor();
  EXPECT_LE(((got - expected).norm() / expected.norm()).item<double>(), 1e-6);
}

}  // namespace
}  // namespace ipt::workloads

#include "workloads/resnet50.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "base/error.h"
#include "workloads/workload.h"

namespace ipt::workloads {
namespace {

int64_t CountParameters(const torch::jit::Module& m) {
  int64_t total = 0;
  for (const auto& p : m.parameters()) total += p.numel();
  return total;
}

TEST(ResNet50Test, HasTorchvisionParameterCountAndOutputShape) {
  auto w = MakeWorkload("resnet50", {});
  torch::jit::Module m = w->BuildModel();
  EXPECT_EQ(CountParameters(m), 25557032);
  torch::NoGradGuard no_grad;
  at::Tensor out = m.forward(w->MakeInputs(2, 0)).toTensor();
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{2, 1000}));
  EXPECT_TRUE(out.isfinite().all().item<bool>());
}

TEST(ResNet50Test, GraphHoldsPlainAtenOpsForThePasses) {
  torch::jit::Module m = MakeWorkload("resnet50", {})->BuildModel();
  auto graph = m.get_method("forward").graph();
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

TEST(ResNet50Test, WeightsAndInputsAreDeterministic) {
  auto a = MakeWorkload("resnet50", {});
  auto b = MakeWorkload("resnet50", {});
  EXPECT_EQ(ModelHash(a->BuildModel()), ModelHash(b->BuildModel()));
  EXPECT_TRUE(a->MakeInputs(1, 3)[0].toTensor().equal(b->MakeInputs(1, 3)[0].toTensor()));
  EXPECT_FALSE(a->MakeInputs(1, 3)[0].toTensor().equal(a->MakeInputs(1, 4)[0].toTensor()));
  WorkloadOptions other;
  other.seed = 7;
  EXPECT_NE(ModelHash(a->BuildModel()), ModelHash(MakeWorkload("resnet50", other)->BuildModel()));
}

TEST(ResNet50Test, FlopsMatchTheKnownFigure) {
  // 4.09 G multiply-adds per 224x224 image (torchvision's figure), counted twice.
  EXPECT_NEAR(MakeWorkload("resnet50", {})->FlopsPerItem(), 8.18e9, 0.02e9);
}

TEST(ResNet50Test, InputsAreNormalisedLikeImageNet) {
  at::Tensor x = MakeWorkload("resnet50", {})->MakeInputs(4, 0)[0].toTensor();
  EXPECT_EQ(x.sizes(), (std::vector<int64_t>{4, 3, 224, 224}));
  // Uniform pixels normalised per channel: mean of channel 0 near (0.5 - 0.485) / 0.229.
  EXPECT_NEAR(x.select(1, 0).mean().item<double>(), (0.5 - 0.485) / 0.229, 0.01);
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

TEST(ResNet50Test, MatchesAnIndependentAtenComposition) {
  auto w = MakeWorkload("resnet50", {});
  torch::jit::Module m = w->BuildModel();
  torch::NoGradGuard no_grad;
  at::Tensor x = w->MakeInputs(2, 0)[0].toTensor();
  at::Tensor expected = IndependentResNet50(m, x);
  at::Tensor got = m.forward({x}).toTensor();
  EXPECT_LE(((got - expected).norm() / expected.norm()).item<double>(), 1e-6);
}

}  // namespace
}  // namespace ipt::workloads

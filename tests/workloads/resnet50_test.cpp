#include "workloads/resnet50.h"

#include <gtest/gtest.h>

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

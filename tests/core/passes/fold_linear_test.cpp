#include "core/passes/fold_linear.h"

#include <gtest/gtest.h>
#include <torch/csrc/jit/testing/file_check.h>

#include "tests/core/passes/pass_test_util.h"

namespace ipt::core::passes {
namespace {

using testing::Forward;
using testing::Freeze;
using testing::MakeModule;
using testing::RelativeL2;
using torch::jit::testing::FileCheck;

std::map<std::string, at::Tensor> Params() {
  at::manual_seed(5);
  return {{"w", at::randn({6, 8})},     {"b", at::randn({6})},       {"c", at::randn({6})},
          {"gamma", at::randn({6})},    {"beta", at::randn({6})},    {"mean", at::randn({6})},
          {"var", at::rand({6}) + 0.5}, {"c3", at::randn({1, 1, 6})}};
}

TEST(FoldLinearTest, FollowingConstantArithmeticFoldsIntoWeightAndBias) {
  std::vector<torch::jit::IValue> inputs = {at::randn({3, 4, 8})};
  struct Case {
    std::string expression;
    std::string gone;
  };
  for (const Case& c : std::vector<Case>{{"y + self.c", "aten::add"},
                                         {"self.c + y", "aten::add"},
                                         {"y - 1.5", "aten::sub"},
                                         {"torch.sub(y, self.c, alpha=2)", "aten::sub"},
                                         {"y * self.c", "aten::mul"},
                                         {"2.0 * y", "aten::mul"},
                                         {"y / self.c", "aten::div"},
                                         {"y / 4", "aten::div"}}) {
    auto module = MakeModule(
        "def forward(self, x):\n  y = torch.linear(x, self.w, self.b)\n"
        "  return " +
            c.expression + "\n",
        Params());
    at::Tensor expected = Forward(module, inputs);
    auto frozen = Freeze(module);
    auto graph = frozen.get_method("forward").graph();
    EXPECT_TRUE(FoldLinearArithmetic(graph)) << c.expression;
    FileCheck().check("aten::linear")->check_not(c.gone)->run(*graph);
    EXPECT_LT(RelativeL2(expected, Forward(frozen, inputs)), 1e-5) << c.expression;
  }
}

TEST(FoldLinearTest, ArithmeticThatDoesNotBroadcastPerFeatureIsLeftAlone) {
  std::vector<torch::jit::IValue> inputs = {at::randn({6, 8})};
  for (const char* expression : {"y + x[:, :6]", "y * self.w[:, :6]", "y * self.c3",
                                 "torch.div(y, 2.0, "
                                 "rounding_mode='floor')"}) {
    auto module = MakeModule(std::string("def forward(self, x):\n  y = torch.linear(x, self.w, "
                                         "self.b)\n  return ") +
                                 expression + "\n",
                             Params());
    auto frozen = Freeze(module);
    EXPECT_FALSE(FoldLinearArithmetic(frozen.get_method("forward").graph())) << expression;
  }
  // The linear's output has another use: folding would change it.
  auto module = MakeModule(
      "def forward(self, x):\n  y = torch.linear(x, self.w, self.b)\n  return (y * 2.0) + y\n",
      Params());
  auto frozen = Freeze(module);
  EXPECT_FALSE(FoldLinearArithmetic(frozen.get_method("forward").graph()));
}

TEST(FoldLinearTest, BatchNormFoldsWhenTheInputIsKnownToBe2D) {
  auto module = MakeModule(
      "def forward(self, x):\n"
      "  y = torch.linear(x, self.w, self.b)\n"
      "  return torch.batch_norm(y, self.gamma, self.beta, self.mean, self.var, False, 0.1, "
      "1e-5, False)\n",
      Params());
  std::vector<torch::jit::IValue> inputs = {at::randn({5, 8})};
  at::Tensor expected = Forward(module, inputs);
  {
    // A scripted graph does not know the rank: batch_norm's channel might not be the features.
    auto frozen = Freeze(module);
    EXPECT_FALSE(FoldLinearBatchNorm(frozen.get_method("forward").graph()));
  }
  auto frozen = Freeze(module);
  auto graph = frozen.get_method("forward").graph();
  // As a traced graph would say.
  graph->inputs()[1]->setType(c10::TensorType::createContiguous(at::kFloat, at::kCPU, {5, 8}));
  EXPECT_TRUE(FoldLinearBatchNorm(graph));
  FileCheck().check("aten::linear")->check_not("aten::batch_norm")->run(*graph);
  EXPECT_LT(RelativeL2(expected, Forward(frozen, inputs)), 1e-5);
}

}  // namespace
}  // namespace ipt::core::passes
